//! Recall and precision of image discovery on the chart corpus (`testdata/charts`), measured against
//! the real `helm template` output.
//!
//! Each corpus chart (with the packed or copied pieces its `pack.txt` names), and each chart of
//! `testdata/discovery-charts/` (ours, for the image classes beyond pod `image:` keys: `scanner` has one of each,
//! `traps` strings that look a little like images and are not), is put in a build context as `charts/<chart>`
//! and discovered with its default values, (a) rendered natively (the default) and (b) read statically (the
//! fallback). The truth is every image in `helm template dryrun charts/<chart> --kube-version <charts'
//! default>`, found by a walk written separately from discovery's and kept simple: a string under a key named
//! `image` that parses as a reference; an env `value` whose entry is named `*IMAGE*` and that has a `/` or
//! `:`; an `args`/`command` item (or the value of its `--flag=`) with a `/` and a tag or digest;
//! `baseImage:version` of a map without `image`; and the same in a string of a ConfigMap's data (or a string
//! in it) that is YAML with a `containers` list of maps. Recall and precision are printed per chart and
//! overall; (a) must find exactly the truth. Charts helm refuses to render (the corpus's must-fail charts)
//! have no truth and are skipped.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use builder::discover::{ChartRenderer, DiscoverOptions, discover};
use formats::reference::Reference;
use yaml_rust2::{Yaml, YamlLoader};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/charts");
const OURS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/discovery-charts");

/// The corpus directories that hold a chart, sorted.
fn corpus_charts() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(CORPUS)
        .expect("testdata/charts")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| Path::new(CORPUS).join(n).join("cases.txt").is_file())
        .collect();
    names.sort();
    names
}

/// The `name:` of a chart's Chart.yaml.
fn chart_name(dir: &Path) -> String {
    let text = fs::read_to_string(dir.join("Chart.yaml")).expect("Chart.yaml");
    text.lines()
        .find_map(|l| l.strip_prefix("name:"))
        .map(|n| n.trim().trim_matches('"').to_string())
        .expect("Chart.yaml has a name")
}

fn copy_dir(src: &Path, dest: &Path) {
    fs::create_dir_all(dest).expect("create chart copy");
    for entry in fs::read_dir(src).expect("read chart") {
        let entry = entry.expect("dir entry");
        let to = dest.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            fs::copy(entry.path(), &to).expect("copy chart file");
        }
    }
}

/// Packs a chart directory as `helm package` lays it out.
fn pack_chart(src: &Path, archive: &Path) {
    fs::create_dir_all(archive.parent().expect("parent")).expect("charts/ directory");
    let gz = flate2::write::GzEncoder::new(
        fs::File::create(archive).expect("create archive"),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    tar.append_dir_all(chart_name(src), src)
        .expect("pack chart");
    tar.into_inner()
        .expect("finish tar")
        .finish()
        .expect("finish gzip");
}

/// The charts of `testdata/discovery-charts`, sorted.
fn our_charts() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(OURS)
        .expect("testdata/discovery-charts")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Builds `context/charts/<corpus name>` from the corpus chart and its `pack.txt`, or from our chart.
fn prepare(name: &str, context: &Path) -> PathBuf {
    if let Some(ours) = name.strip_prefix("ours/") {
        let dest = context.join("charts").join(ours);
        copy_dir(&Path::new(OURS).join(ours), &dest);
        return dest;
    }
    let case_dir = Path::new(CORPUS).join(name);
    let dest = context.join("charts").join(name);
    copy_dir(&case_dir.join("chart"), &dest);
    if let Ok(pack) = fs::read_to_string(case_dir.join("pack.txt")) {
        for line in pack.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (src, target) = line.split_once("->").expect("SRC -> TARGET");
            let src = Path::new(CORPUS).join(src.trim());
            match target.trim().strip_suffix('/') {
                Some(dir) => copy_dir(&src, &dest.join(dir)),
                None => pack_chart(&src, &dest.join(target.trim())),
            }
        }
    }
    dest
}

fn normalised(text: &str) -> Option<String> {
    Reference::parse(text.trim()).ok().map(|r| r.to_string())
}

/// The truth walk (see the module docs).
fn truth_walk(node: &Yaml, key: &str, out: &mut BTreeSet<String>) {
    match node {
        Yaml::String(s) if key == "image" => out.extend(normalised(s)),
        Yaml::Array(items) => {
            for item in items {
                if matches!(key, "args" | "command")
                    && let Yaml::String(s) = item
                {
                    let value = s.split_once('=').map_or(s.as_str(), |(_, v)| v);
                    let pinned = value.contains('@')
                        || value.rsplit('/').next().is_some_and(|l| l.contains(':'));
                    if value.contains('/') && pinned {
                        out.extend(normalised(value));
                    }
                }
                truth_walk(item, "", out);
            }
        }
        Yaml::Hash(map) => {
            let get = |k: &str| map.get(&Yaml::String(k.to_string())).and_then(Yaml::as_str);
            if let (Some(base), Some(version), None) =
                (get("baseImage"), get("version"), get("image"))
            {
                out.extend(normalised(&format!("{base}:{version}")));
            }
            if get("kind") == Some("ConfigMap")
                && let Some(Yaml::Hash(data)) = map.get(&Yaml::String("data".into()))
            {
                for value in data.values() {
                    embedded_truth(value, 0, out);
                }
            }
            if let (Some(name), Some(value)) = (get("name"), get("value"))
                && name.to_ascii_uppercase().contains("IMAGE")
                && value.contains(['/', ':'])
            {
                out.extend(normalised(value));
            }
            for (k, v) in map {
                truth_walk(v, k.as_str().unwrap_or_default(), out);
            }
        }
        _ => {}
    }
}

/// The truth of YAML held in a string: walked when it has a `containers` list of maps; its strings are
/// looked into in turn (two levels).
fn embedded_truth(value: &Yaml, depth: usize, out: &mut BTreeSet<String>) {
    let Some(text) = value.as_str() else {
        return;
    };
    let Ok(docs) = YamlLoader::load_from_str(text) else {
        return;
    };
    for doc in &docs {
        if has_containers(doc) {
            truth_walk(doc, "", out);
        }
        if depth == 0
            && let Yaml::Hash(map) = doc
        {
            for inner in map.values() {
                embedded_truth(inner, 1, out);
            }
        }
    }
}

fn has_containers(node: &Yaml) -> bool {
    match node {
        Yaml::Hash(map) => map.iter().any(|(k, v)| {
            (k.as_str() == Some("containers")
                && matches!(v, Yaml::Array(items) if items.iter().any(|i| matches!(i, Yaml::Hash(_)))))
                || has_containers(v)
        }),
        Yaml::Array(items) => items.iter().any(has_containers),
        _ => false,
    }
}

/// The images of `helm template dryrun charts/<name>` run in `context`; `None` when helm refuses the chart.
fn truth(context: &Path, name: &str) -> Option<BTreeSet<String>> {
    let name = name.strip_prefix("ours/").unwrap_or(name);
    let out = Command::new("helm")
        .args(["template", "dryrun", &format!("charts/{name}")])
        .args(["--kube-version", charts::capabilities::DEFAULT_KUBE_VERSION])
        .current_dir(context)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("HELM_NAMESPACE")
        .output()
        .expect("the recall measurement needs `helm` (v4) on PATH: install it with .ci/helm");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).expect("helm prints UTF-8");
    let docs = YamlLoader::load_from_str(&text).expect("helm prints YAML");
    let mut images = BTreeSet::new();
    for doc in &docs {
        truth_walk(doc, "", &mut images);
    }
    Some(images)
}

fn found(context: &Path, opts: &DiscoverOptions) -> BTreeSet<String> {
    discover(context, opts)
        .expect("discovery runs")
        .images
        .into_iter()
        .map(|i| i.reference)
        .collect()
}

/// Recall and precision counts.
#[derive(Default, Clone, Copy)]
struct Score {
    truth: usize,
    found: usize,
    hits: usize,
}

impl Score {
    fn of(truth: &BTreeSet<String>, found: &BTreeSet<String>) -> Score {
        Score {
            truth: truth.len(),
            found: found.len(),
            hits: truth.intersection(found).count(),
        }
    }

    fn add(&mut self, other: Score) {
        self.truth += other.truth;
        self.found += other.found;
        self.hits += other.hits;
    }

    fn recall(self) -> f64 {
        ratio(self.hits, self.truth)
    }

    fn precision(self) -> f64 {
        ratio(self.hits, self.found)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

#[test]
fn discovery_finds_exactly_the_images_helm_renders_for_the_corpus() {
    let native = DiscoverOptions::default();
    let fallback = DiscoverOptions {
        renderer: ChartRenderer::Helm,
        helm: Some(PathBuf::from("/nonexistent/helm")),
        ..DiscoverOptions::default()
    };
    let (mut total_native, mut total_static) = (Score::default(), Score::default());
    let mut misses = Vec::new();
    let mut measured = 0;
    let ours = our_charts().into_iter().map(|n| format!("ours/{n}"));
    for name in corpus_charts().into_iter().chain(ours) {
        let context = tempfile::tempdir().expect("temporary directory");
        prepare(&name, context.path());
        let Some(truth) = truth(context.path(), &name) else {
            println!("{name}: helm does not render it with default values; skipped");
            continue;
        };
        measured += 1;
        let ours = found(context.path(), &native);
        if name.starts_with("ours/") {
            let warnings = discover(context.path(), &native)
                .expect("discovery runs")
                .warnings;
            assert!(
                warnings.is_empty(),
                "{name}: a look-alike gave a warning: {warnings:?}"
            );
        }
        let statically = found(context.path(), &fallback);
        let (a, b) = (Score::of(&truth, &ours), Score::of(&truth, &statically));
        println!(
            "{name}: {} images; native recall {:.2} precision {:.2}; static recall {:.2} precision {:.2}",
            truth.len(),
            a.recall(),
            a.precision(),
            b.recall(),
            b.precision()
        );
        for image in &truth {
            println!("  {image}");
        }
        if ours != truth {
            misses.push(format!(
                "{name}: missed {:?}, extra {:?}",
                truth.difference(&ours).collect::<Vec<_>>(),
                ours.difference(&truth).collect::<Vec<_>>()
            ));
        }
        total_native.add(a);
        total_static.add(b);
    }
    println!(
        "overall ({} images): native recall {:.3} precision {:.3}; static recall {:.3} precision {:.3}",
        total_native.truth,
        total_native.recall(),
        total_native.precision(),
        total_static.recall(),
        total_static.precision()
    );
    assert!(measured >= 5, "only {measured} corpus charts rendered");
    assert!(total_native.truth > 0, "the corpus renders no image");
    assert!(
        misses.is_empty(),
        "native discovery differs from helm's rendering:\n{}",
        misses.join("\n")
    );
    assert_eq!(total_native.recall(), 1.0);
    assert_eq!(total_native.precision(), 1.0);
}
