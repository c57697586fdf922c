//! Edges of published sealos recipes left open by issue 19, each checked against the real tool:
//!
//! - YAML: fixtures of our own covering the YAML test suite's categories of valid input (block and flow
//!   collections, multi-line plain and quoted scalars, escapes, block scalars with chomping and indentation
//!   indicators, anchors, aliases and merge keys, explicit keys, tags and directives, document markers,
//!   comments and empty values, tabs in scalars, CRLF, BOMs, continuation lines at the key's column),
//!   loaded by `sealos build --dry-run --strict` and by real `helm` (go-yaml, through `fromYaml`): the
//!   images found per file must be the same.
//! - `COPY registry DEST`: every spelling that lands at `/registry` is the embedded registry; another
//!   destination (resolved against WORKDIR) moves the embedded tree there with the images' digests unchanged,
//!   with a warning that sealos's runtime serves `/registry` only; a second `COPY registry` elsewhere is an
//!   error naming both lines.
//! - Platforms: `pull --platform linux/amd65` lists the known architectures; an archive of
//!   `images/skopeo/tar.txt` built for another platform is a warning, an error with `--strict`.
//!
//! - buildah: recipe shapes of published sealos Kubefiles (application, rootfs, patch, every config
//!   instruction, multi-stage, each `COPY registry` spelling) get the image config `buildah bud` writes,
//!   field for field (only `created`, `history`, `rootfs` and buildah's version label left out).
//!
//! Needs `helm` and `buildah` on PATH (fails naming them).

mod build_common;
mod store_fixture;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use build_common::{build, require_tool, sealos, write_context};
use formats::reference::Reference;

/// (file stem, YAML text): each holds images as strings under `image` keys or split into
/// `registry`/`repository`/`tag` fields, and nothing else that looks like one.
const YAML_CASES: &[(&str, &str)] = &[
    (
        "block-collections",
        "kind: Pod\nspec:\n  containers:\n  - name: a\n    image: example/block-seq:1\n  -   name: b\n      image: example/block-seq-indented:1\n  initContainers:\n    - image: example/block-seq-nested:1\n",
    ),
    (
        "flow-collections",
        "spec: {containers: [{name: a, image: example/flow:1}, {image: \"example/flow-quoted:1\", ports: [80, 443]},\n  {image: 'example/flow-multiline:1'}], empty: {}, none: []}\n",
    ),
    (
        "plain-multiline",
        "spec:\n  description: a plain scalar\n    continued on the next line\n\n    and after an empty line\n  image: example/plain-multi:1\n",
    ),
    (
        "single-quoted",
        "spec:\n  note: 'it''s\n    folded\n\n    here'\n  image: 'example/single:1'\n",
    ),
    (
        "double-quoted-escapes",
        "spec:\n  note: \"tab\\tescaped \\u00e9 \\x41 line\\\n    joined\"\n  image: \"example/\\x64ouble:1\"\n",
    ),
    (
        "literal-folded-chomping",
        "spec:\n  script: |\n    echo image: not-an-image:1\n    done\n  folded: >-\n    folded\n    text\n  keep: |+\n    kept\n\n  strip: |2-\n      indented by indicator\n  image: example/after-blocks:1\n",
    ),
    (
        "anchors-aliases-merge",
        "defaults: &defaults\n  repository: example/merged\n  tag: v1\nregistry: &reg r.example.com\napp:\n  <<: *defaults\n  tag: v2\nsecond:\n  <<: [*defaults]\nplain: &img example/anchored:1\nspec:\n  image: *img\n",
    ),
    (
        "explicit-and-complex-keys",
        "? image\n: example/explicit-key:1\n? |\n  block key\n: value\n",
    ),
    (
        "tags-and-directives",
        "%YAML 1.1\n%TAG !e! tag:example.com,2000:\n--- !e!pod\nkind: Pod\nspec:\n  image: !!str example/tagged:1\n  other: !local value\n  count: !!int 3\n",
    ),
    (
        "multi-document-markers",
        "# a comment before the first document\nimage: example/doc-one:1\n...\n---\nimage: example/doc-two:1\n--- # comment after the marker\nimage: example/doc-three:1\n---\n---\nimage: example/doc-after-empty:1\n...\n",
    ),
    (
        "comments-and-empty-values",
        "spec: # trailing comment\n  # full-line comment\n  empty:\n  nulls: ~\n  image: example/commented:1 # the image\n  list:\n  -\n  - image: example/in-list:1\n",
    ),
    (
        "tabs-in-scalars",
        "spec:\n  note: \"a\tb\"\n  plain: a\tb\n  image: example/tabs:1\t\n",
    ),
    (
        "crlf",
        "kind: Pod\r\nspec:\r\n  containers:\r\n  - image: example/crlf:1\r\n    note: 'multi\r\n      line'\r\n  - image: \"example/crlf-quoted:1\"\r\n",
    ),
    (
        "bom-after-document-marker",
        "\u{feff}image: example/bom-first:1\n---\n\u{feff}image: example/bom-second:1\n---\r\n\u{feff}image: example/bom-crlf:1\r\n",
    ),
    (
        "continued-at-key-column",
        "spec:\n  description: 'Foo bar\n  continued at the key'\n  image: example/continued:1\n  other: \"x\n  y\"\n",
    ),
    (
        "indentation-variants",
        "spec:\n    containers:\n    -   image: example/four-spaces:1\n    sidecars:\n     - image: example/odd-indent:1\nlist:\n- - image: example/nested-seq:1\n",
    ),
    (
        "split-image-fields",
        "image:\n  registry: r.example.com\n  repository: team/split\n  tag: \"1.10\"\n",
    ),
    (
        "json-style",
        "{\"kind\": \"Pod\", \"spec\": {\"containers\": [{\"image\": \"example/json:1\"}]}}\n",
    ),
    (
        "long-keys-and-unicode",
        "spec:\n  \u{e9}t\u{e9}: \"\u{e9}\u{e9}\"\n  \"quoted key\": x\n  'single key': y\n  image: example/unicode:1\n",
    ),
];

/// A chart whose one template prints, for every fixture under `files/` and every document in it (split at
/// `---` lines), `# files/NAME.yaml` and then the document as go-yaml reads it, in JSON.
const ORACLE_TEMPLATE: &str = r#"{{- range $path, $_ := .Files.Glob "files/*.yaml" }}
{{- range $d := regexSplit "(?m)^---[ \t]*(#[^\n]*)?\r?\n" ($.Files.Get $path) -1 }}
# {{ $path }}
{{ $d | fromYaml | toJson }}
{{- end }}
{{- end }}
"#;

/// Every image in a document as go-yaml read it: strings under `image`, and maps with `repository`
/// (with `registry` and `tag` when present), in their normal form.
fn json_images(value: &serde_json::Value, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(image)) = map.get("image") {
                out.insert(normal(image));
            }
            if let Some(serde_json::Value::String(repository)) = map.get("repository") {
                let mut image = repository.clone();
                if let Some(serde_json::Value::String(registry)) = map.get("registry") {
                    image = format!("{registry}/{image}");
                }
                if let Some(serde_json::Value::String(tag)) = map.get("tag") {
                    image = format!("{image}:{tag}");
                }
                out.insert(normal(&image));
            }
            map.values().for_each(|v| json_images(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| json_images(v, out)),
        _ => {}
    }
}

fn normal(image: &str) -> String {
    Reference::parse(image)
        .unwrap_or_else(|e| panic!("`{image}` is not a reference: {e}"))
        .to_string()
}

/// The images real helm's YAML reader finds, per fixture file (`manifests/NAME.yaml`).
fn helm_images(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    require_tool("helm");
    let chart = dir.join("chart");
    let mut files = vec![
        (
            "Chart.yaml".to_string(),
            "apiVersion: v2\nname: oracle\nversion: 0.1.0\n".to_string(),
        ),
        ("templates/t.yaml".to_string(), ORACLE_TEMPLATE.to_string()),
    ];
    for (name, text) in YAML_CASES {
        files.push((format!("files/{name}.yaml"), text.to_string()));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    write_context(&chart, &files);
    let out = Command::new("helm")
        .arg("template")
        .arg(&chart)
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        if let Some(path) = line.strip_prefix("# files/") {
            current = format!("manifests/{path}");
        } else if line.starts_with('{') {
            let doc: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(
                doc.get("Error").is_none(),
                "go-yaml rejects {current}: {doc}"
            );
            json_images(&doc, found.entry(current.clone()).or_default());
        }
    }
    found
}

/// The images `sealos build --dry-run --strict` finds in `ctx`, per file.
fn our_images(ctx: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let out = sealos()
        .args([
            "build",
            "--dry-run",
            "--strict",
            "--platform",
            "linux/amd64",
        ])
        .args(["--format", "json"])
        .arg(ctx)
        .output()
        .expect("run sealos");
    assert!(
        out.status.success(),
        "sealos build --dry-run --strict: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for image in plan["images"].as_array().expect("images") {
        for source in image["sources"].as_array().expect("sources") {
            if let Some(file) = source["file"].as_str() {
                found
                    .entry(file.to_string())
                    .or_default()
                    .insert(image["reference"].as_str().unwrap().to_string());
            }
        }
    }
    found
}

#[test]
fn yaml_of_every_valid_category_gives_the_images_go_yaml_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    let mut files = vec![(
        "Kubefile".to_string(),
        "FROM scratch\nCOPY manifests manifests\n".to_string(),
    )];
    for (name, text) in YAML_CASES {
        files.push((format!("manifests/{name}.yaml"), text.to_string()));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    write_context(&ctx, &files);
    let helm = helm_images(tmp.path());
    for (name, _) in YAML_CASES {
        let file = format!("manifests/{name}.yaml");
        assert!(
            helm.get(&file).is_some_and(|s| !s.is_empty()),
            "helm found no image in {file}: the fixture tests nothing"
        );
    }
    let ours = our_images(&ctx);
    for (file, images) in &helm {
        assert_eq!(ours.get(file), Some(images), "{file}");
    }
    assert_eq!(ours.len(), helm.len(), "{ours:?}");
    // A BOM opening a later document (files joined with `---`) is dropped, as go-yaml does.
    assert!(
        ours["manifests/bom-after-document-marker.yaml"].contains("docker.io/example/bom-second:1")
    );
}

/// `sealos build --dry-run` of a context whose Kubefile ends with `copy` (after a manifest naming an image).
fn dry_run_copy(dir: &Path, copy: &str) -> Output {
    write_context(
        dir,
        &[
            (
                "Kubefile",
                &format!("FROM scratch\nCOPY manifests manifests\n{copy}\n"),
            ),
            ("manifests/app.yaml", "image: example.com/app:v1\n"),
        ],
    );
    sealos()
        .args(["build", "--dry-run", "--platform", "linux/amd64"])
        .arg(dir)
        .output()
        .expect("run sealos")
}

#[test]
fn copy_registry_to_any_spelling_of_slash_registry_is_the_embedded_registry() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, copy) in [
        "COPY registry /registry/",
        "WORKDIR /\nCOPY registry registry",
        "WORKDIR /opt\nCOPY registry ../registry",
        "WORKDIR /opt\nCOPY registry /registry",
        "COPY registry/ ./registry/",
    ]
    .into_iter()
    .enumerate()
    {
        let out = dry_run_copy(&tmp.path().join(format!("ctx{i}")), copy);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success()
                && text.contains("note: registry: the embedded images, written at /registry"),
            "{copy}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn dry_run_names_where_copy_registry_elsewhere_writes_the_embedded_images() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, (copy, landed)) in [
        ("WORKDIR /app\nCOPY registry registry", "/app/registry"),
        ("COPY registry /var/lib/registry/", "/var/lib/registry"),
        ("COPY registry /registry/sub", "/registry/sub"),
    ]
    .into_iter()
    .enumerate()
    {
        let out = dry_run_copy(&tmp.path().join(format!("ctx{i}")), copy);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success()
                && text.contains(&format!(
                    "note: registry: the embedded images, written at {landed} (one layer per image"
                )),
            "{copy}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_second_copy_registry_elsewhere_is_an_error_naming_both_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let out = dry_run_copy(
        tmp.path(),
        "WORKDIR /app\nCOPY registry registry\nCOPY registry /registry",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(":5")
            && err.contains(
                "`COPY registry` to `/registry`: line 4 already writes the embedded images at `/app/registry`"
            ),
        "{err}"
    );
    // The same destination twice is one registry.
    let same = dry_run_copy(
        &tmp.path().join("same"),
        "COPY registry registry\nCOPY registry /registry/",
    );
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
}

/// Every file (relative path -> content) under `dir`.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn copy_registry_under_a_workdir_writes_the_embedded_tree_there_with_the_same_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src-store");
    store_fixture::make_image(&src, "example.com/team/app:v1", "app");
    store_fixture::make_image(&src, "example.com/team/web:v2", "web");
    let archives = tmp.path().join("archives");
    std::fs::create_dir_all(&archives).unwrap();
    for (name, reference) in [
        ("app.tar", "example.com/team/app:v1"),
        ("web.tar", "example.com/team/web:v2"),
    ] {
        store_fixture::save_oci_archive(&src, reference, &archives.join(name));
    }
    // The same images embedded by two Kubefiles: at /registry, and under WORKDIR /app.
    let built = |name: &str, copy: &str| {
        let ctx = tmp.path().join(name);
        std::fs::create_dir_all(ctx.join("images/skopeo")).unwrap();
        for archive in ["app.tar", "web.tar"] {
            std::fs::copy(
                archives.join(archive),
                ctx.join("images/skopeo").join(archive),
            )
            .unwrap();
        }
        write_context(
            &ctx,
            &[
                (
                    "Kubefile",
                    &format!("FROM scratch\nCOPY images images\n{copy}\n"),
                ),
                (
                    "images/skopeo/tar.txt",
                    "oci-archive:app.tar\noci-archive:web.tar\n",
                ),
            ],
        );
        let dest = tmp.path().join(format!("{name}-out"));
        let out = build(
            &tmp.path().join("store"),
            &[
                "-t",
                &format!("test/{name}:v1"),
                "--timestamp",
                "0",
                "--platform",
                "linux/amd64",
                "-o",
                &format!("type=local,dest={}", dest.display()),
                ctx.to_str().unwrap(),
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        (dest, err)
    };
    let (root, root_err) = built("root", "COPY registry registry");
    let (app, app_err) = built("app", "WORKDIR /app\nCOPY registry registry");
    assert!(!root_err.contains("warning:"), "{root_err}");
    assert_eq!(
        app_err.matches("warning:").count(),
        1,
        "one warning: {app_err}"
    );
    assert!(
        app_err.contains(":4: `COPY registry` writes the embedded images at `/app/registry`, but sealos's runtime serves only `/registry`"),
        "{app_err}"
    );
    assert!(!app.join("registry").exists(), "nothing at /registry");
    let at_root = tree(&root.join("registry"));
    let under_app = tree(&app.join("app/registry"));
    assert_eq!(
        at_root.keys().collect::<Vec<_>>(),
        under_app.keys().collect::<Vec<_>>()
    );
    assert!(at_root == under_app, "same bytes in both trees");
    let v2 = "docker/registry/v2";
    for (repo, tag) in [("team/app", "v1"), ("team/web", "v2")] {
        let link = under_app
            .get(&format!(
                "{v2}/repositories/{repo}/_manifests/tags/{tag}/current/link"
            ))
            .unwrap_or_else(|| panic!("no {repo}:{tag} in {:?}", under_app.keys()));
        let digest = String::from_utf8(link.clone()).unwrap();
        let hex = digest.strip_prefix("sha256:").unwrap();
        let manifest = &under_app[&format!("{v2}/blobs/sha256/{}/{hex}/data", &hex[..2])];
        assert_eq!(
            formats::digest::Digest::sha256_of(manifest).to_string(),
            digest
        );
    }
}

#[test]
fn pull_of_an_unknown_architecture_is_an_error_listing_the_known_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let out = sealos()
        .arg("--root")
        .arg(tmp.path().join("store"))
        .args(["pull", "--platform", "linux/amd65", "127.0.0.1:1/app:v1"])
        .output()
        .expect("run sealos");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown architecture `amd65` in platform `linux/amd65`")
            && err.contains("known architectures: 386, amd64, arm, arm64,"),
        "{err}"
    );
    assert!(
        !tmp.path().join("store").exists(),
        "nothing is written for a refused platform"
    );
}

#[test]
fn an_archive_image_of_another_platform_is_a_warning_and_an_error_with_strict() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src-store");
    // An amd64-only image, saved as the archive a recipe lists in images/skopeo/tar.txt.
    store_fixture::make_image(&src, "example.com/team/app:v1", "app");
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(ctx.join("images/skopeo")).unwrap();
    store_fixture::save_oci_archive(
        &src,
        "example.com/team/app:v1",
        &ctx.join("images/skopeo/app.tar"),
    );
    write_context(
        &ctx,
        &[
            (
                "Kubefile",
                "FROM scratch\nCOPY images images\nCOPY registry registry\n",
            ),
            ("images/skopeo/tar.txt", "oci-archive:app.tar\n"),
        ],
    );
    let store = tmp.path().join("store");
    let run = |extra: &[&str]| {
        let mut args = vec!["-t", "test/app:v1", "--timestamp", "0"];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        build(&store, &args)
    };
    let warned = run(&["--platform", "linux/arm64"]);
    let err = String::from_utf8_lossy(&warned.stderr);
    assert!(warned.status.success(), "{err}");
    assert!(
        err.contains("warning: image `team/app:v1` (from ")
            && err.contains("oci-archive:images/skopeo/app.tar")
            && err.contains("is for `linux/amd64`, not for the build's platform `linux/arm64`"),
        "{err}"
    );
    let own = run(&["--platform", "linux/amd64"]);
    assert!(own.status.success());
    assert!(
        !String::from_utf8_lossy(&own.stderr).contains("warning:"),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    let strict = run(&["--platform", "linux/arm64", "--strict"]);
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(!strict.status.success());
    assert!(
        err.contains("--strict: image `team/app:v1`") && err.contains("`linux/arm64`"),
        "{err}"
    );
}

/// Recipe shapes of published sealos Kubefiles (our own texts): an application, a rootfs, a patch, one
/// using every config instruction with ARG and WORKDIR, a multi-stage one, and one per `COPY registry`
/// spelling. Each context holds `registry/.keep` (what buildah copies; for sealos the embedded registry).
const BUILDAH_RECIPES: &[(&str, &str)] = &[
    (
        "application",
        "FROM scratch\nLABEL sealos.io.type=\"application\" sealos.io.version=\"v1\"\nCOPY charts charts\nCOPY manifests manifests\nCOPY registry registry\nCOPY scripts scripts\nENV DEFAULT_NAMESPACE sealos\nENV cloudDomain=\"127.0.0.1.nip.io\" cloudPort=\"\"\nENV NAME=${NAME:-app} NAMESPACE=$DEFAULT_NAMESPACE\nCMD [\"bash scripts/init.sh\"]\n",
    ),
    (
        "rootfs",
        "FROM scratch\nMAINTAINER sealos\nLABEL init=\"init-cri.sh \\\n      && bash init.sh\" \\\n      clean=\"clean.sh && bash clean-cri.sh\" \\\n      check=\"check.sh $registryData\" \\\n      sealos.io.type=\"rootfs\"\nENV criData=/var/lib/containerd \\\n    registryData=/var/lib/registry \\\n    registryDomain=sealos.hub \\\n    registryPort=5000 \\\n    SEALOS_SYS_KUBE_VERSION=v1.27.7\nCOPY bin ./bin\nCOPY etc ./etc\nCOPY registry ./registry\nCOPY scripts ./scripts\n",
    ),
    (
        "patch",
        "FROM scratch\nCOPY etc etc\nCOPY registry/ registry/\nENV registryPort=5001\n",
    ),
    (
        "every-config-instruction",
        "ARG VERSION=v1.2.3\nFROM scratch\nARG VERSION\nARG NAME=app\nLABEL version=$VERSION name=${NAME}\nWORKDIR /opt/${NAME}\nCOPY scripts scripts\nWORKDIR /\nCOPY ./registry ./registry\nENV APP_HOME=/opt/$NAME PATH=/opt/$NAME/bin:$PATH\nEXPOSE 8080 9090/udp\nVOLUME /data\nUSER 1000:1000\nSTOPSIGNAL SIGTERM\nENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD [\"echo $VERSION\"]\n",
    ),
    (
        "multi-stage",
        "FROM scratch AS tools\nCOPY bin /bin\nENV TOOLS=1\n\nFROM scratch\nCOPY --from=tools /bin ./bin\nCOPY registry registry\nENV STAGE=final\nCMD [\"sh\"]\n",
    ),
];

/// `buildah bud` of `context` into the OCI layout `out` (tag `v1`), in a private vfs storage under `dir`.
fn buildah_bud(dir: &Path, context: &Path, out: &Path) {
    let done = Command::new("buildah")
        .args(["--storage-driver", "vfs", "--root"])
        .arg(dir.join("buildah-root"))
        .arg("--runroot")
        .arg(dir.join("buildah-runroot"))
        .args(["bud", "--platform", "linux/amd64", "-f"])
        .arg(context.join("Kubefile"))
        .arg("-t")
        .arg(format!("oci:{}:v1", out.display()))
        .arg(context)
        .env("BUILDAH_ISOLATION", "chroot")
        .output()
        .expect("run buildah");
    assert!(
        done.status.success(),
        "buildah bud: {}",
        String::from_utf8_lossy(&done.stderr)
    );
}

/// The image config of `tag` in the OCI layout `dir` without what depends on the tool or the time:
/// `created`, `history`, `rootfs` and the `io.buildah.version` label (and `Labels` when that was the only one).
fn comparable_config(dir: &Path, tag: &str) -> serde_json::Value {
    let desc = build_common::tagged(dir, tag)
        .unwrap_or_else(|| panic!("{tag} is not tagged in {}", dir.display()));
    let manifest = build_common::blob_json(dir, desc["digest"].as_str().unwrap());
    let mut config = build_common::blob_json(dir, manifest["config"]["digest"].as_str().unwrap());
    let object = config.as_object_mut().unwrap();
    for key in ["created", "history", "rootfs"] {
        object.remove(key);
    }
    let inner = config["config"].as_object_mut().unwrap();
    if let Some(labels) = inner.get_mut("Labels").and_then(|l| l.as_object_mut()) {
        labels.remove("io.buildah.version");
        // buildah's only label leaves an empty map where an image without labels has none.
        if labels.is_empty() {
            inner.remove("Labels");
        }
    }
    config
}

#[test]
fn published_recipe_shapes_get_buildahs_config_exactly() {
    require_tool("buildah");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    for (name, kubefile) in BUILDAH_RECIPES {
        let ctx = tmp.path().join(name);
        write_context(
            &ctx,
            &[
                ("Kubefile", kubefile),
                (
                    "charts/app/Chart.yaml",
                    "apiVersion: v2\nname: app\nversion: 0.1.0\n",
                ),
                ("manifests/cm.yaml", "kind: ConfigMap\n"),
                ("registry/.keep", ""),
                ("scripts/init.sh", "echo init\n"),
                ("bin/tool", "tool\n"),
                ("etc/config.toml", "x = 1\n"),
            ],
        );
        let tag = format!("recipe-{name}:v1");
        let out = build(
            &store,
            &[
                "--platform",
                "linux/amd64",
                "-t",
                &tag,
                ctx.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs_dir = tmp.path().join(format!("{name}-buildah"));
        buildah_bud(tmp.path(), &ctx, &theirs_dir);
        assert_eq!(
            comparable_config(&store, &format!("docker.io/library/{tag}")),
            comparable_config(&theirs_dir, "v1"),
            "{name}: our config (left) against buildah's (right)"
        );
    }
}
