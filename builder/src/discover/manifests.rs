//! `manifests/`: every `*.yaml`, `*.yml` and `*.tmpl` file, recursively. Each YAML document is walked (see
//! the rules in `yaml.rs`); a file that is not valid YAML (a template with `{{ }}`) is a warning and only its
//! literal `image:` lines are read.

use std::path::{Path, PathBuf};

use super::ignore::SealIgnore;
use super::yaml::{self, LineImage, ScanOptions};
use formats::walk::Walk;

use super::{Collector, DiscoverError, Provenance, in_context, read_text, relative};

/// Deepest directory nesting walked (symlinked directories are not followed).
const MAX_DIR_DEPTH: usize = 64;

/// The files under the context directory `dir` whose names end with one of `extensions`, recursively,
/// sorted, minus what `.sealignore` leaves out: each as (where it is listed, where it is read). A symlinked
/// file is read where it leads inside the context ([`in_context`]); symlinked directories are not walked.
pub(crate) fn files_with_extensions(
    context: &Path,
    dir: &Path,
    extensions: &[&str],
    ignore: &SealIgnore,
    found: &mut Collector,
) -> Result<Vec<(PathBuf, PathBuf)>, DiscoverError> {
    let mut out = Vec::new();
    let Some(root) = in_context(context, dir, found)? else {
        return Ok(out);
    };
    let walk = Walk::new(&root)
        .sorted()
        .min_depth(1)
        .max_depth(MAX_DIR_DEPTH + 1)
        .skipping(|e| ignore.ignores_path(&relative(context, e.path())));
    for entry in walk {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.is_not_found() && e.path == root => break,
            Err(e) => return Err(DiscoverError::io("list", &e.path)(e.source)),
        };
        if entry.file_type().is_dir() {
            continue;
        }
        let path = entry.into_path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| extensions.iter().any(|e| n.ends_with(e)))
            && let Some(read) = in_context(context, &path, found)?.filter(|p| p.is_file())
        {
            out.push((path, read));
        }
    }
    out.sort();
    Ok(out)
}

/// Scans `manifests/`.
pub(crate) fn scan_manifests(
    context: &Path,
    ignore: &SealIgnore,
    found: &mut Collector,
) -> Result<(), DiscoverError> {
    let dir = context.join("manifests");
    for (path, read) in
        files_with_extensions(context, &dir, &[".yaml", ".yml", ".tmpl"], ignore, found)?
    {
        let file = relative(context, &path);
        let text = read_text(&read)?;
        scan_yaml_file(&file, &text, found, |line| Provenance::Manifest {
            file: file.clone(),
            line,
            key: String::new(),
        });
    }
    Ok(())
}

/// Scans the YAML `text` of `file`; `at(line)` names a place in it, to which the key path of each image is
/// added ([`Provenance::with_key`]). Not YAML: a warning, then the literal `image:` lines.
pub(crate) fn scan_yaml_file(
    file: &str,
    text: &str,
    found: &mut Collector,
    at: impl Fn(usize) -> Provenance,
) {
    match yaml::load_documents(text, 0) {
        Ok(docs) => {
            for doc in &docs {
                for c in yaml::scan(doc, &ScanOptions::default()) {
                    found.image(&c.text, at(c.line).with_key(&c.path));
                }
            }
        }
        Err(e) => {
            found.warn(
                format!("{file}:{}", e.line),
                format!(
                    "not valid YAML ({}); only its literal `image:` lines were read",
                    e.message
                ),
            );
            for (line, image) in yaml::image_lines(text) {
                match image {
                    LineImage::Literal(text) | LineImage::Template(text) => {
                        found.image(&text, at(line))
                    }
                }
            }
        }
    }
}
